"""Export of trained models: int8/float32 `.tflite`, C arrays, and the metadata that travels with them.

    from nas.export.quantize import quantize_checkpoint
    report = quantize_checkpoint("runs/train/x", "out/x")
"""
