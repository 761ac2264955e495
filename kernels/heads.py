"""Attention's heads' layout written by the split op: the Reshape and Transpose behind Q, K and V go.

A BERT layer splits each of Q, K and V into heads with a Reshape of the Linear's [batch, seq, hidden] output
to [batch, seq, heads, head_dim] and a Transpose(0, 2, 1, 3) to [batch, heads, seq, head_dim]. Behind
pruneofa's SparseLinearSplit (the fused Q/K/V node) OpenVINO runs those Transposes as nodes of their own: 18
of them in MiniLM, 6 % of the sparse INT8 model's node time at batch 1 and 5 % at batch 16 (docs/kernels.md,
"Sparse INT8 against the targets"). The op stores its outputs token by token in groups of 16 features
already, so it can store them in the heads' layout at about the same cost (a group split at a head's
edge where head_dim is not a multiple of 16): its ``head_dim`` attribute.

The fold needs proof that the Reshape only splits the last dimension: the exported Reshape takes a dynamic
target (a Concat of the inputs' ShapeOf and constants), so it is folded only where shapes are static — the
static-shape copies the deploy runtime compiles (:class:`pruneofa.core.runtime.Engine`) and static models —
where the Reshape's output is [batch, seq, heads, head_dim] for an input [batch, seq, heads · head_dim]. A
node is folded only when every part qualifies with the same ``head_dim``.
"""

from __future__ import annotations

from typing import Any

from pruneofa.kernels.rewrite import SPLIT_OP_TYPE, replace_output

HEADS_PERMUTATION = [0, 2, 1, 3]


def _heads_transpose(output: Any) -> tuple[int, Any] | None:
    """(head_dim, the Transpose) where ``output`` [batch, seq, n] feeds only a Reshape to [batch, seq,
    heads, head_dim] that feeds only a Transpose(0, 2, 1, 3); None otherwise."""
    targets = list(output.get_target_inputs())
    if len(targets) != 1 or targets[0].get_index() != 0:
        return None
    reshape = targets[0].get_node()
    if reshape.get_type_name() != "Reshape":
        return None
    source, target = output.get_partial_shape(), reshape.get_output_partial_shape(0)
    if source.is_dynamic or target.is_dynamic or len(source) != 3 or len(target) != 4:
        return None
    batch, seq, features = (int(d) for d in source.to_shape())
    dims = [int(d) for d in target.to_shape()]
    if dims[:2] != [batch, seq] or dims[2] * dims[3] != features:
        return None
    after = list(reshape.output(0).get_target_inputs())
    if len(after) != 1 or after[0].get_index() != 0:
        return None
    transpose = after[0].get_node()
    if transpose.get_type_name() != "Transpose":
        return None
    order = transpose.input_value(1).get_node()
    if order.get_type_name() != "Constant" or [int(v) for v in order.get_vector()] != HEADS_PERMUTATION:
        return None
    return dims[3], transpose


def fold_heads_layout(model: Any, create: Any) -> int:
    """Fold the Reshape + Transpose behind every qualifying SparseLinearSplit node of ``model`` (modified in
    place) into the node's ``head_dim``; returns how many Transposes went. ``create(type, inputs,
    attributes)`` makes an extension node (the rewrite's factory)."""
    removed = 0
    for node in [op for op in model.get_ordered_ops() if op.get_type_name() == SPLIT_OP_TYPE]:
        attributes = dict(node.get_attributes())
        if int(attributes.get("head_dim", 0)):
            continue
        found = [_heads_transpose(node.output(i)) for i in range(node.get_output_size())]
        if any(item is None for item in found):
            continue
        head_dims = {item[0] for item in found if item is not None}
        part_rows = int(attributes["out_features"]) // int(attributes["parts"])
        head_dim = head_dims.pop() if len(head_dims) == 1 else 0
        if head_dim <= 0 or part_rows % head_dim:
            continue
        inputs = [node.input_value(i) for i in range(node.get_input_size())]
        folded = create(SPLIT_OP_TYPE, inputs, {**attributes, "head_dim": head_dim})
        folded.set_friendly_name(node.get_friendly_name())
        for index, item in enumerate(found):
            assert item is not None
            replace_output(item[1].output(0), folded.output(index))
            removed += 1
    if removed:
        model.validate_nodes_and_infer_types()
    return removed
