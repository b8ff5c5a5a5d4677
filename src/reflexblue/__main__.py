from reflexblue.cli import main

main()
