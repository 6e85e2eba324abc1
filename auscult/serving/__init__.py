"""Serving: the ONNX Runtime predictor, telemetry, and the Seldon Core microservice class around them."""
