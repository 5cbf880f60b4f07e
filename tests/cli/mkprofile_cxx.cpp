// mkprofile_cxx.cpp — a C++ allocation site for mkprofile, so that the CLI's
// demangling is tested on a real symbol: fixture::Widget::make(unsigned long).
#include <cstddef>

extern "C" void *tracked_malloc(std::size_t n);
extern "C" void note_site(const char *name, const char *file, int line);

namespace fixture {
struct Widget {
    static void *make(std::size_t n);
};

void *Widget::make(std::size_t n)
{
    void *p = tracked_malloc(n); note_site("fixture::Widget::make(unsigned long)", __FILE__, __LINE__);
    return p;
}
} // namespace fixture

extern "C" void *cxx_site(std::size_t n)
{
    return fixture::Widget::make(n);
}
