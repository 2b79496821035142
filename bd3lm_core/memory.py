"""How much memory is free where a model would be loaded, so a model too large is refused before it loads.

On the CPU that is the kernel's MemAvailable (free memory plus what the page
cache would give back), read from /proc/meminfo; elsewhere the free pages the
OS reports. On CUDA it is the driver's count for the device.
"""

from __future__ import annotations

import torch


def free_bytes(device: torch.device) -> int:
    """Bytes free for a model on `device`: MemAvailable on the CPU, the driver's free count on CUDA."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
