"""revplan: sales compensation, quota and territory plans as code.

The command line (revplan/cli.py) sits above the pipeline packages:
dsl -> compiler -> runtime -> reports.
"""
