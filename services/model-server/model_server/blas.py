"""One set of OpenBLAS kernels on every x86-64 machine, so that training and answers are the
same to the last bit wherever they run.

numpy and scipy's OpenBLAS picks its kernels for the CPU it finds when it is loaded
(DYNAMIC_ARCH): on a CPU with AVX-512 it takes the SkylakeX kernels, elsewhere the Haswell
(AVX2) ones, and the two sum in different orders. The seed models trained on one and the other
differ in their last bits (measured November 2026: the committed diabetes artifact's sha256
3da58048... with Haswell, 94b4ead7... with SkylakeX), and so does every probability served.
The committed ``models/`` and the recorded answers are Haswell's; every x86-64 CPU since 2013
runs those kernels. Other architectures keep their own choice.

Only the environment variable read when OpenBLAS is loaded does this, so ``pin`` must run
before numpy is first imported: the package's ``__init__`` calls it. An ``OPENBLAS_CORETYPE``
already set is left as it is.
"""

from __future__ import annotations

import os
import platform

#: The OpenBLAS core type every x86-64 process of the project runs.
X86_64_CORETYPE = "Haswell"


def pin() -> None:
    """Set ``OPENBLAS_CORETYPE`` for the OpenBLAS this process (and its children) will load."""
    if platform.machine() in ("x86_64", "AMD64"):
        os.environ.setdefault("OPENBLAS_CORETYPE", X86_64_CORETYPE)
