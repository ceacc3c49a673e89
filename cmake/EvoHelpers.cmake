# The three helpers every module uses (STYLE.md): one library target per module, tests and
# micro-benchmarks beside the sources.

set(EVO_WARNINGS -Wall -Wextra -Wpedantic)

# evo_add_module(NAME SOURCES a.cpp b.cpp DEPS evo::core ...)
# Makes library target evo_<NAME> with alias evo::<NAME>; headers are included as
# "<module>/<file>.hpp" relative to src/.
function(evo_add_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(evo_${name} STATIC ${ARG_SOURCES})
  add_library(evo::${name} ALIAS evo_${name})
  target_include_directories(evo_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(evo_${name} PRIVATE ${EVO_WARNINGS})
  target_link_libraries(evo_${name} PUBLIC ${ARG_DEPS})
endfunction()

# evo_add_test(NAME SOURCES a_test.cpp DEPS evo::ids)  -> ctest entry NAME (label "unit")
function(evo_add_test name)
  if(NOT EVO_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${EVO_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 300)
endfunction()

# evo_add_benchmark(NAME SOURCES a_benchmark.cpp DEPS evo::ids)  -> binary in build/bench/
function(evo_add_benchmark name)
  if(NOT EVO_BUILD_BENCHMARKS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${EVO_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} benchmark::benchmark benchmark::benchmark_main)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
endfunction()
