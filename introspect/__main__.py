from introspect.cli import main

main()
