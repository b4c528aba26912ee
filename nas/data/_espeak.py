"""In-process espeak-ng through ctypes, on the library that ``espeakng-loader`` bundles.

One `Espeak` is one *fresh* copy of the synthesiser. libespeak-ng keeps state across utterances in
globals (the flutter phase, the wave phase, the echo buffer, its noise generator), so the same call
gives slightly different samples depending on what was said before. To make output a function of its
arguments alone, every `Espeak` loads its own private copy of the shared library (a new file is a new
``dlopen``, with its own globals), seeds espeak's noise generator, and unloads it again on `close`.
Everything said through one instance is then determined by the sequence of calls made on it.

Header facts used (espeak-ng ``speak_lib.h``, 1.52): ``AUDIO_OUTPUT_SYNCHRONOUS`` = 2 (``espeak_Synth``
returns when all audio went to the callback); callback ``int cb(short *wav, int n, espeak_EVENT *ev)``,
return 0 to go on; parameters ``espeakRATE`` = 1 (words/min, 80..450), ``espeakVOLUME`` = 2 (0..200),
``espeakPITCH`` = 3 (0..100, 50 normal), ``espeakRANGE`` = 4 (0..100, 50 normal); ``POS_CHARACTER`` = 1;
``espeakCHARS_UTF8`` = 1; ``espeakINITIALIZE_DONT_EXIT`` = 0x8000 (return an error instead of exit()).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
RATE_MIN_WPM, RATE_MAX_WPM = 80, 450

# Variants driven by klatt mode 6 synthesise through espeak's C++ "speechPlayer", whose noise comes
# from libc rand(): process-global state shared with everything else. They are never used.
KLATT6_VARIANTS = frozenset({"klatt6", "adam", "benjamin", "caleb", "david", "edward2", "mike2", "Reed"})

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakUnavailableError(RuntimeError):
    """libespeak-ng (from the ``espeakng-loader`` package) cannot be loaded."""


def _paths() -> tuple[Path, Path]:
    try:
        import espeakng_loader
    except ImportError as e:
        raise EspeakUnavailableError(
            "the built-in corpus needs espeak-ng: install the Python package 'espeakng-loader' "
            "(pip install espeakng-loader), which bundles libespeak-ng and its voice data"
        ) from e
    try:
        lib, data = Path(espeakng_loader.get_library_path()), Path(espeakng_loader.get_data_path())
    except RuntimeError as e:
        raise EspeakUnavailableError(f"espeakng-loader is installed but broken ({e}); reinstall it") from e
    if not lib.is_file():
        raise EspeakUnavailableError(
            f"espeakng-loader's library is missing at {lib}; reinstall espeakng-loader"
        )
    return lib, data


def data_dir() -> Path:
    """The bundled ``espeak-ng-data`` folder."""
    return _paths()[1]


def available_variants() -> frozenset[str]:
    """Voice variants (``+name``) in the bundled data, less those that use libc's rand()."""
    return frozenset(p.name for p in (data_dir() / "voices" / "!v").iterdir()) - KLATT6_VARIANTS


def _dlclose(handle: int) -> None:
    import _ctypes

    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
    if close is not None:
        close(handle)


class Espeak:
    """A fresh, private espeak-ng synthesiser; use as a context manager.

    ``seed`` seeds espeak's own noise generator (breath, aspiration, whisper). Samples come back as
    int16 at `sample_rate_hz` (22050 Hz for the bundled data).
    """

    def __init__(self, seed: int = 0):
        lib_path, data_path = _paths()
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept alive: the library holds a raw pointer to it
        tmp = Path(tempfile.mkdtemp(prefix="kwsnas-espeak-"))
        try:
            private = tmp / lib_path.name
            shutil.copyfile(lib_path, private)
            try:
                self._lib = ctypes.CDLL(str(private), mode=getattr(os, "RTLD_LOCAL", 0))
            except OSError as e:
                raise EspeakUnavailableError(
                    f"cannot load libespeak-ng from espeakng-loader ({e}); reinstall 'espeakng-loader'"
                ) from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # the mapping stays valid after unlinking
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path.parent).encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            self._unload()
            raise EspeakUnavailableError(f"espeak_Initialize failed ({rate}) with data at {data_path}")
        self.sample_rate_hz: int = rate
        self.version: str = (lib.espeak_Info(None) or b"?").decode()
        lib.espeak_SetSynthCallback(self._callback)
        # Initialize seeds the noise generator from time(NULL): replace that at once.
        lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)

    def _collect(self, wav, n, _events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def synth(
        self, text: str, voice: str, *, rate_wpm: int = 175, pitch: int = 50, pitch_range: int = 50,
        volume: int = 100,
    ) -> np.ndarray:  # fmt: skip
        """Say ``text`` with ``voice`` (``"en-us+m3"``); int16 samples at `sample_rate_hz`."""
        lib = self._lib
        if lib is None:
            raise RuntimeError("Espeak is closed")
        err = lib.espeak_SetVoiceByName(voice.encode())
        if err != 0:
            raise ValueError(f"espeak has no voice {voice!r} (error {err})")
        # After the voice: selecting a voice can reset these.
        for param, value in (
            (_RATE, int(np.clip(rate_wpm, RATE_MIN_WPM, RATE_MAX_WPM))),
            (_VOLUME, int(np.clip(volume, 0, 200))),
            (_PITCH, int(np.clip(pitch, 0, 100))),
            (_RANGE, int(np.clip(pitch_range, 0, 100))),
        ):
            lib.espeak_SetParameter(param, value, 0)
        self._chunks = []
        raw = text.encode("utf-8")
        err = lib.espeak_Synth(raw, len(raw) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed ({err}) for {text!r} with {voice!r}")
        out = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        self._chunks = []
        return out

    def _unload(self) -> None:
        lib, self._lib = self._lib, None
        if lib is not None:
            _dlclose(lib._handle)

    def close(self) -> None:
        if self._lib is not None:
            self._lib.espeak_Terminate()
            self._unload()

    def __enter__(self) -> Espeak:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
