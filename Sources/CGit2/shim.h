// libgit2's public header; only SandpiperGit imports this module.
#include <git2.h>
