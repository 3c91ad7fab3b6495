#!/bin/sh
# A stand-in for an AI agent: it uses its secrets and, carelessly, prints one. latch masks it.
echo "agent: running as pid $$"
echo "agent: calling the model with OPENAI_API_KEY=$OPENAI_API_KEY"
echo "agent: done"
