"""``pruneofa package``: an exported folder as an OpenVINO Model Server or Triton model repository, or as a
compressed archive in which pruned weights cost (almost) nothing, and the archive restored.

* :mod:`.command`: :func:`package_model`, the command (checks, atomic output, the output's manifest);
* :mod:`.files`: the folder's own files (no links out, no special files) and :class:`PackageResult`;
* :mod:`.repository`: the OVMS and Triton layouts and their configs; :mod:`.sparse_ir`: the kernels
  library shipped with a sparse IR;
* :mod:`.archive_format`: member names and the index; :mod:`.archive_writer`: writing an archive;
* :mod:`.archive_scan`: the hostile-archive checks made before anything is written;
  :mod:`.archive_restore`: :func:`unpack_archive`, the streaming restore;
* :mod:`.signing`: ed25519 keys, signing and verifying the index.
"""

from pruneofa.deploy.packaging.archive_restore import unpack_archive
from pruneofa.deploy.packaging.command import package_model
from pruneofa.deploy.packaging.files import PackageResult
from pruneofa.deploy.packaging.signing import load_private_key, load_public_key

__all__ = ["PackageResult", "load_private_key", "load_public_key", "package_model", "unpack_archive"]
