// libstdc++'s headers from GCC 11 on call this when an allocation size
// overflows; runtimes before GLIBCXX_3.4.29 do not export it. Defining it here
// (hidden, like every symbol of this addon) keeps the prebuild loadable with
// the libstdc++ of glibc 2.28 systems. It reports what it always meant.
#include <bits/functexcept.h>

namespace std {
void __throw_bad_array_new_length() { __throw_bad_alloc(); }
}  // namespace std
