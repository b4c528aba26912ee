"""Skip marks for tests that need the Arm toolchain or QEMU (scripts/bootstrap.sh installs both)."""

from __future__ import annotations

import pytest

from hardware.emulator import have_qemu
from hardware.firmware.build import have_toolchain

# tests that build firmware
needs_toolchain = pytest.mark.skipif(not have_toolchain(), reason="arm-none-eabi-gcc not installed")
# tests that build firmware and run it in QEMU
needs_emulation = pytest.mark.skipif(not (have_toolchain() and have_qemu()),
                                     reason="arm-none-eabi-gcc or qemu-system-arm not installed")
