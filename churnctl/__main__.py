from churnctl.cli.main import main

main()
