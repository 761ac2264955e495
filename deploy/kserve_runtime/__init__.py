"""pruneofa as a KServe runtime: an exported folder, with pruneofa's pipeline and sparse kernels, served by
``kserve.ModelServer`` (REST v1 and v2, gRPC v2), so an InferenceService on Kubernetes runs it.

``python -m pruneofa.deploy.kserve_runtime --model_dir /mnt/models --model_name NAME`` is the container's
command (:mod:`.__main__`); :class:`~pruneofa.deploy.kserve_runtime.model.PruneofaModel` is the
``kserve.Model``. Needs ``pip install 'pruneofa[kserve]'``; docs/deploy.md ("KServe") has the container
recipe, the ServingRuntime and InferenceService, and the versions tested.

This package's ``__init__`` imports nothing: kserve's generated protobuf messages and
``tritonclient.grpc``'s share the ``inference.*`` names and cannot be loaded into one process
(kserve/kserve#3099), so only the runtime's own process imports kserve. (Not named ``kserve``: a folder of
that name beside the code would shadow the kserve distribution for the type checker.)
"""
