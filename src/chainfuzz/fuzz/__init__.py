"""``chainfuzz fuzz``: atheris harnesses (`harness`) run in subprocesses by `launch`; in crash
mode (OSS-Fuzz, ClusterFuzzLite) a defect is raised as its property's type from `crash`."""
