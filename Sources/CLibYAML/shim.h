// libyaml 0.2 (Debian's libyaml-dev): the event parser under turnkeeper's YAML reader.
#include <yaml.h>
