# The exact-mode control-socket client (no Python dependency). Included by src/extension's
# CMakeLists and meant to be included by the CLI's for `spyglass attach PID --exact`:
#   include(${CMAKE_SOURCE_DIR}/src/extension/client.cmake)
#   target_link_libraries(spyglass PRIVATE spyglass_exact_client)
if(NOT TARGET spyglass_exact_client)
  add_library(spyglass_exact_client STATIC ${CMAKE_SOURCE_DIR}/src/extension/protocol_client.cpp)
  target_include_directories(spyglass_exact_client PUBLIC ${CMAKE_SOURCE_DIR}/src)
  target_link_libraries(spyglass_exact_client PUBLIC nlohmann_json::nlohmann_json)
endif()
