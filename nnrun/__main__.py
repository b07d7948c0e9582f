from nnrun.cli.main import main

main(prog_name="nnrun")
