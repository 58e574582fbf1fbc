from hsta_bench.cli import main

main()
