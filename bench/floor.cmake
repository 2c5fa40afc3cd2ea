# bench/floor.cmake — builds the writev micro-benchmark (bench/writev_floor.c) as
# build/sluice-writev-floor. Included from bench/CMakeLists.txt; needs Threads::Threads, which the
# top-level CMakeLists.txt finds. Links nothing of libsluice: it measures the kernel alone.
add_executable(sluice-writev-floor ${CMAKE_CURRENT_LIST_DIR}/writev_floor.c)
target_link_libraries(sluice-writev-floor PRIVATE Threads::Threads)
set_target_properties(sluice-writev-floor PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

# A short run in the test suite: every channel and batch size must complete (exit 0), so the
# micro-benchmark cannot rot between benchmark sessions.
add_test(NAME bench/writev_floor COMMAND sluice-writev-floor --frames 2000 --seconds 0.2)
set_tests_properties(bench/writev_floor PROPERTIES LABELS unit TIMEOUT 60)
