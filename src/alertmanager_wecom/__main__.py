from alertmanager_wecom.cli import main

main()
