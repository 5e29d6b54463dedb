from trainwiz.cli import main

raise SystemExit(main())
