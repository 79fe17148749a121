#!/bin/bash -eu
# ClusterFuzzLite's build script: the same fuzzers as OSS-Fuzz's (oss-fuzz/build.sh).
exec bash "$SRC/chainfuzz/oss-fuzz/build.sh"
