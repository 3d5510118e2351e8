from mf2.cli import main

main()
