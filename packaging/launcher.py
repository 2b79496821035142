"""The bundle's entry point. PyInstaller freezes a script, and bd3lm_studio.main
uses relative imports, so that module cannot be the script itself."""

import sys

from bd3lm_studio.main import main

sys.exit(main())
