from xcompile.cli import main

raise SystemExit(main())
