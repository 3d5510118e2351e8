from mf2.cli import entry

entry()
