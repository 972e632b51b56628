"""The machine a benchmark ran on, for the line every bench program prints."""

import os


def machine():
    """'N cores, CPU model' from /proc/cpuinfo."""
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}"
