"""Export a training checkpoint to ONNX (opset 17) with onnx.helper and check it against JAX.

    python training/export_onnx.py /tmp/train-work/checkpoint.pkl models/head_tissue.onnx

Graph: input `input` [1, 1, D, H, W] (D, H, W dynamic) -> Conv(3x3x3, dilation d, pads d) + Relu
per layer -> Conv 1x1x1 -> output `logits` [1, 4, D, H, W]. Only Conv and Relu, so tract and
ONNX Runtime both run it.
"""
import pickle
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(state):
    params, dilations = state["params"], state["dilations"]
    nodes, inits = [], []
    x = "input"
    for i, ((w, b), d) in enumerate(zip(params[:-1], dilations)):
        inits += [numpy_helper.from_array(np.asarray(w, np.float32), f"conv{i}.weight"),
                  numpy_helper.from_array(np.asarray(b, np.float32), f"conv{i}.bias")]
        nodes.append(helper.make_node(
            "Conv", [x, f"conv{i}.weight", f"conv{i}.bias"], [f"conv{i}"], name=f"conv{i}",
            kernel_shape=[3, 3, 3], dilations=[d] * 3, pads=[d] * 6, strides=[1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"], name=f"relu{i}"))
        x = f"relu{i}"
    w, b = params[-1]
    inits += [numpy_helper.from_array(np.asarray(w, np.float32), "classifier.weight"),
              numpy_helper.from_array(np.asarray(b, np.float32), "classifier.bias")]
    nodes.append(helper.make_node("Conv", [x, "classifier.weight", "classifier.bias"], ["logits"],
                                  name="classifier", kernel_shape=[1, 1, 1]))
    k = int(np.asarray(w).shape[0])
    graph = helper.make_graph(
        nodes, "fuseprint_head_tissue",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, "D", "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, k, "D", "H", "W"])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="fuseprint training/export_onnx.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    ckpt, out = sys.argv[1], sys.argv[2]
    with open(ckpt, "rb") as f:
        state = pickle.load(f)
    model = build(state)
    onnx.save(model, out)
    # Same numbers as the network that was trained?
    import jax.numpy as jnp
    import onnxruntime as ort

    import train
    x = np.random.default_rng(0).random((1, 1, 37, 41, 29), dtype=np.float32)
    want = np.asarray(train.forward([(jnp.asarray(w), jnp.asarray(b)) for w, b in state["params"]],
                                    jnp.asarray(x)))
    got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    err = float(np.abs(want - got).max() / (np.abs(want).max() + 1e-12))
    print(f"wrote {out} (step {state['step']}), max relative difference vs JAX {err:.2e}")
    assert err < 1e-4


if __name__ == "__main__":
    main()
