"""The baseline for bench_node.py: what a user would write without veriml — FastAPI + uvicorn calling
onnxruntime, no validation, no receipt, no log. Usage: plain_server.py MODEL.onnx PORT"""

import sys

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
app = FastAPI()


@app.post("/infer")
def infer(body: dict) -> dict:
    inputs = {name: np.asarray(value, dtype=np.float32) for name, value in body["inputs"].items()}
    outputs = session.run(None, inputs)
    return {"outputs": {out.name: value.tolist() for out, value in zip(session.get_outputs(), outputs, strict=True)}}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
