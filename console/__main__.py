from console.cli.main import main

main.script()  # as the installed program runs it (Group.script)
