"""Test helper: write `.tflite` files with the `tflite` schema builders the way TensorFlow's
converter lays them out, independently of ``hardware.tflite_write``."""

from __future__ import annotations

import flatbuffers
import numpy as np
import tflite


class ConverterStyle:
    """Writes a model the way TensorFlow's converter lays it out (not our writer's way): one
    buffer per tensor (empty ones for activations), long names, shape_signature, zero points
    spelled out per channel, biases with explicit per-channel quantization, old-style operator
    codes (only ``deprecated_builtin_code``) for codes below 127."""

    def __init__(self) -> None:
        self.b = flatbuffers.Builder(4096)
        self.tensors: list[int] = []
        self.buffers: list[bytes] = [b""]
        self.ops: list[tuple] = []
        self.codes: list[int] = []
        self.names: list[str] = []

    def tensor(self, name, shape, ttype, scale=None, zp=None, axis=0, data=None, signature=None) -> int:
        b = self.b
        self.buffers.append(b"" if data is None else np.ascontiguousarray(data).tobytes())
        buf_index = len(self.buffers) - 1
        name_off = b.CreateString(name)
        shape_off = b.CreateNumpyVector(np.asarray(shape, dtype=np.int32))
        sig_off = b.CreateNumpyVector(np.asarray(signature, dtype=np.int32)) if signature else None
        q_off = None
        if scale is not None:
            s_off = b.CreateNumpyVector(np.asarray(scale, dtype=np.float32))
            z_off = b.CreateNumpyVector(np.asarray(zp, dtype=np.int64))
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, s_off)
            tflite.QuantizationParametersAddZeroPoint(b, z_off)
            tflite.QuantizationParametersAddQuantizedDimension(b, axis)
            q_off = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape_off)
        tflite.TensorAddType(b, ttype)
        tflite.TensorAddBuffer(b, buf_index)
        tflite.TensorAddName(b, name_off)
        if q_off is not None:
            tflite.TensorAddQuantization(b, q_off)
        if sig_off is not None:
            tflite.TensorAddShapeSignature(b, sig_off)
        self.tensors.append(tflite.TensorEnd(b))
        self.names.append(name)
        return len(self.tensors) - 1

    def act(self, name, shape, scale, zp, ttype=tflite.TensorType.INT8, signature=None) -> int:
        return self.tensor(name, shape, ttype, [scale], [zp], signature=signature)

    def const_i32(self, name, values) -> int:
        arr = np.asarray(values, dtype=np.int32)
        return self.tensor(name, arr.shape, tflite.TensorType.INT32, data=arr)

    def weights(self, name, rng, shape, axis, per_channel=True):
        w = rng.integers(-127, 128, size=shape).astype(np.int8)
        n = shape[axis] if per_channel else 1
        scales = 10 ** rng.uniform(-3.5, -1.0, size=n)
        return self.tensor(name, shape, tflite.TensorType.INT8, scales, [0] * n, axis, w), scales

    def bias(self, name, rng, in_scale, w_scales, channels):
        scales = np.float32(in_scale) * np.asarray(w_scales, dtype=np.float32)
        data = rng.integers(-3000, 3000, size=channels).astype(np.int32)
        return self.tensor(name, (channels,), tflite.TensorType.INT32, scales, [0] * len(scales), 0, data)

    def op(self, code, inputs, outputs, options_type=0, options=None) -> None:
        if code not in self.codes:
            self.codes.append(code)
        self.ops.append((self.codes.index(code), inputs, outputs, options_type, options))

    def options(self, start, adds, end) -> int:
        start(self.b)
        for fn, v in adds:
            fn(self.b, v)
        return end(self.b)

    def finish(self, inputs, outputs) -> bytes:
        b = self.b
        op_offs = []
        for index, ins, outs, otype, opts in self.ops:
            i_off = b.CreateNumpyVector(np.asarray(ins, dtype=np.int32))
            o_off = b.CreateNumpyVector(np.asarray(outs, dtype=np.int32))
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, index)
            tflite.OperatorAddInputs(b, i_off)
            tflite.OperatorAddOutputs(b, o_off)
            if opts is not None:
                tflite.OperatorAddBuiltinOptionsType(b, otype)
                tflite.OperatorAddBuiltinOptions(b, opts)
            op_offs.append(tflite.OperatorEnd(b))

        def vec(start, offs):
            start(b, len(offs))
            for o in reversed(offs):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        t_vec = vec(tflite.SubGraphStartTensorsVector, self.tensors)
        op_vec = vec(tflite.SubGraphStartOperatorsVector, op_offs)
        in_vec = b.CreateNumpyVector(np.asarray(inputs, dtype=np.int32))
        out_vec = b.CreateNumpyVector(np.asarray(outputs, dtype=np.int32))
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, t_vec)
        tflite.SubGraphAddInputs(b, in_vec)
        tflite.SubGraphAddOutputs(b, out_vec)
        tflite.SubGraphAddOperators(b, op_vec)
        sg = tflite.SubGraphEnd(b)
        buf_offs = []
        for raw in self.buffers:
            d = b.CreateByteVector(raw) if raw else None
            tflite.BufferStart(b)
            if d is not None:
                tflite.BufferAddData(b, d)
            buf_offs.append(tflite.BufferEnd(b))
        code_offs = []
        for code in self.codes:
            tflite.OperatorCodeStart(b)
            if code < 127:
                tflite.OperatorCodeAddDeprecatedBuiltinCode(b, code)  # old files: builtin_code left at 0
            else:
                tflite.OperatorCodeAddDeprecatedBuiltinCode(b, 127)
                tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddVersion(b, 1)
            code_offs.append(tflite.OperatorCodeEnd(b))
        codes_vec = vec(tflite.ModelStartOperatorCodesVector, code_offs)
        sgs_vec = vec(tflite.ModelStartSubgraphsVector, [sg])
        bufs_vec = vec(tflite.ModelStartBuffersVector, buf_offs)
        desc = b.CreateString("TOCO Converted.")
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, codes_vec)
        tflite.ModelAddSubgraphs(b, sgs_vec)
        tflite.ModelAddDescription(b, desc)
        tflite.ModelAddBuffers(b, bufs_vec)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())
