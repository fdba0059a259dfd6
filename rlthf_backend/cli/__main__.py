from rlthf_backend.cli.main import main

main()
