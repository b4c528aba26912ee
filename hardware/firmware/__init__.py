"""The measurement firmware: C sources for the target (startup, protocol server, per-board
clock/UART/counter code, linker-script template) and :mod:`hardware.firmware.build`, which
compiles them with a generated model into an ELF for one board."""

from hardware.firmware.build import (
    FIRMWARE_VERSION,
    BuildError,
    DoesNotFit,
    FirmwareImage,
    ToolchainMissing,
    build_firmware,
    have_toolchain,
    toolchain_version,
)

__all__ = [
    "FIRMWARE_VERSION", "BuildError", "DoesNotFit", "FirmwareImage", "ToolchainMissing", "build_firmware",
    "have_toolchain", "toolchain_version",
]
