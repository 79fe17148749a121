"""One OSS-Fuzz / ClusterFuzzLite fuzzer: a chainfuzz harness on one bundled target, in crash mode.

``build.sh`` copies this file to ``fuzz_<harness>_<name>.py`` for each (harness, target) and
compiles the copy with ``compile_python_fuzzer`` (PyInstaller), bundling that target alone in
the folder ``chainfuzz_target/`` (``--add-data``). The harness comes from the program's name,
the target from that folder (``sys._MEIPASS`` in the binary, the script's own folder when run
as a script). No reliable signal tells a process it runs under OSS-Fuzz or ClusterFuzzLite,
so this wrapper is what turns crash mode on (``CHAINFUZZ_CRASH=1``), and it records no case
files (``--crashes=``): libFuzzer's ``crash-*`` artifact is the record, and no case left by
an earlier run on the same bot can hide a defect. libFuzzer's flags pass through unchanged.
"""

import os
import sys


def main() -> int:
    name = os.path.basename(sys.argv[0]).removesuffix(".py")  # fuzz_<harness>_<name>
    harness = name.split("_")[1]
    here = getattr(sys, "_MEIPASS", os.path.dirname(os.path.abspath(sys.argv[0])))
    folder = os.path.join(here, "chainfuzz_target")
    [target] = os.listdir(folder)
    os.environ["CHAINFUZZ_TARGET"] = os.path.join(folder, target)
    os.environ["CHAINFUZZ_CRASH"] = "1"
    from chainfuzz.fuzz.harness import script_main

    sys.argv[1:1] = ["--crashes="]
    return script_main(harness)


if __name__ == "__main__":
    sys.exit(main())
