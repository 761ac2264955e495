"""The ground every component stands on: tasks, data, metrics, SQuAD processing, the ``pruneofa.json``
manifest, errors, atomic folders, CPU detection, YAML loading, and the runtime layer that opens exported
folders. It imports only third-party code, never a component or the command-line front (a test checks)."""
