#include "launcher/commands.h"

int main(int argc, char** argv) { return corral::launcher::Main(argc, argv); }
