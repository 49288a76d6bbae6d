from carecoord.demo.main import main

main()
