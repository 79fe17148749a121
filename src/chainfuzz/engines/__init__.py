"""Inference engines as targets: the tiny models chainfuzz builds, and the engines that run them."""
