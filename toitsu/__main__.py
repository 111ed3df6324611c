from toitsu.cli import main

raise SystemExit(main())
