"""``python -m workflow.hub push``: publish a local hub's repos to the Hugging Face Hub."""

import sys

from workflow.hub.push import main

sys.exit(main())
