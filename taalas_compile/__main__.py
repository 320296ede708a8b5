from taalas_compile.cli.app import main

main()
