from nnrun.cli import main

main(prog_name="nnrun")
