"""The `flowforge` command line, an application built on the library (which never imports it).

    flowforge train --data moons --out runs/moons      train, write a run folder, print test NLL
    flowforge sample runs/moons -n 1000 --out x.csv    draw samples (.npy, .csv, or CSV on stdout)
    flowforge score runs/moons --data x.csv            per-row log-likelihood, mean NLL
    flowforge train --data t.csv --context-columns theta --out runs/c    learn p(x | theta)
    flowforge sample runs/c -n 100 --context 1.5       samples at theta = 1.5
    flowforge demo                                     RealNVP on two moons in under a minute
    flowforge train --resume runs/moons --steps 5000   continue a run (interrupted or finished) to 5000 steps
    flowforge check runs/moons --dtype float64         round-trip error, log-det gap, layer scales

app.py runs a command and reports errors; parser.py builds the parser from one module per
subcommand (train.py, sample.py, score.py, demo.py, check.py), each holding its options and its work.
"""
from .app import main
from .parser import build_parser

__all__ = ["build_parser", "main"]
