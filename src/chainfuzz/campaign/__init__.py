"""``chainfuzz campaign``: a nightly fuzz campaign from one TOML file.

One scheduler shares the budget over every (target, property) pair and both search modes
(Hypothesis generation and the atheris harnesses), keeps its state and findings on disk as
they happen (a killed campaign resumes where it stopped), matches findings against the crash
corpus and earlier runs (new, known, fixed, regressed), and writes the reports.
"""
