# Third-party libraries, all from Debian packages. The spyglass binary links them statically
# (or uses them header-only) so the wheel needs nothing but glibc at run time.
find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(Threads REQUIRED)

function(spyglass_static_library var name)
  find_library(${var} NAMES lib${name}.a)
  if(NOT ${var})
    message(FATAL_ERROR "lib${name}.a not found: run scripts/install-deps.sh")
  endif()
endfunction()

spyglass_static_library(SPYGLASS_LIBELF elf)
spyglass_static_library(SPYGLASS_LIBZ z)
spyglass_static_library(SPYGLASS_LIBEDIT edit)
spyglass_static_library(SPYGLASS_LIBTINFO tinfo)
spyglass_static_library(SPYGLASS_LIBBSD bsd)
spyglass_static_library(SPYGLASS_LIBMD md)

add_library(spyglass_deps INTERFACE)
target_link_libraries(spyglass_deps INTERFACE fmt::fmt-header-only nlohmann_json::nlohmann_json
                      Threads::Threads)
target_compile_definitions(spyglass_deps INTERFACE TOML_HEADER_ONLY=1)
get_target_property(_toml_inc tomlplusplus::tomlplusplus INTERFACE_INCLUDE_DIRECTORIES)
target_include_directories(spyglass_deps SYSTEM INTERFACE ${_toml_inc})
target_link_libraries(spyglass_deps INTERFACE CLI11::CLI11)

add_library(spyglass_libelf INTERFACE)
target_link_libraries(spyglass_libelf INTERFACE ${SPYGLASS_LIBELF} ${SPYGLASS_LIBZ})
add_library(spyglass_libedit INTERFACE)
target_link_libraries(spyglass_libedit INTERFACE ${SPYGLASS_LIBEDIT} ${SPYGLASS_LIBTINFO}
                      ${SPYGLASS_LIBBSD} ${SPYGLASS_LIBMD})
