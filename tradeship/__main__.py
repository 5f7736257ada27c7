from tradeship.cli import main

raise SystemExit(main())
