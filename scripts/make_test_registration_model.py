#!/usr/bin/env python3
"""Writes tests/models/constant_shift_registration.onnx: a tiny "registration model" whose
output is a known displacement, so the test can check that fuseprint's model pipeline
(resample into the model grid, run, convert units, resample back) applies it exactly.

Input  "pair"         [1, 2, D, H, W]  (fixed, moving) on the model grid
Output "displacement" [1, 3, D, H, W]  = SHIFT_VOXELS[c] everywhere, in model-grid voxels
                                        along the tensor axes D, H, W (+ 0 * input, so the
                                        output has the input's spatial shape)

    /tmp/venv-reg/bin/pip install onnx numpy
    /tmp/venv-reg/bin/python scripts/make_test_registration_model.py
"""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SHIFT_VOXELS = [1.5, -2.0, 0.75]

out = Path(__file__).resolve().parent.parent / "tests" / "models" / "constant_shift_registration.onnx"

pair = helper.make_tensor_value_info("pair", TensorProto.FLOAT, [1, 2, "D", "H", "W"])
disp = helper.make_tensor_value_info("displacement", TensorProto.FLOAT, [1, 3, "D", "H", "W"])
zero = numpy_helper.from_array(np.zeros((1, 3, 1, 1, 1), dtype=np.float32), "zero")
shift = numpy_helper.from_array(
    np.array(SHIFT_VOXELS, dtype=np.float32).reshape(1, 3, 1, 1, 1), "shift"
)
# [1,2,D,H,W] -> sum over channels keeps [1,1,D,H,W]; times zero broadcasts to [1,3,D,H,W].
nodes = [
    helper.make_node("ReduceSum", ["pair", "axes"], ["summed"], keepdims=1),
    helper.make_node("Mul", ["summed", "zero"], ["zeros"]),
    helper.make_node("Add", ["zeros", "shift"], ["displacement"]),
]
axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
graph = helper.make_graph(nodes, "constant_shift_registration", [pair], [disp], [zero, shift, axes])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
out.parent.mkdir(parents=True, exist_ok=True)
onnx.save(model, str(out))
print(f"wrote {out} ({out.stat().st_size} bytes), shift {SHIFT_VOXELS} voxels")
