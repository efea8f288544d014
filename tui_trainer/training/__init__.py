"""The GPT-2 training core. Importing this package does not import torch; its modules do."""
