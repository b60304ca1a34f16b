from console.cli.main import main

main()
