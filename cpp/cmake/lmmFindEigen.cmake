# Eigen >= 3.4 for lmm and for projects that link it (installed next to lmmConfig.cmake).
#
# Tried in order: the caller's own settings (Eigen3_DIR, CMAKE_PREFIX_PATH, a system
# Eigen such as Debian's libeigen3-dev), then the copy the cmeel-eigen wheel installs
# into the Python on PATH (or Python_EXECUTABLE). Nothing of the machine lmm was built
# on is recorded. Sets Eigen3_FOUND; when it is false, LMM_EIGEN_NOT_FOUND says both ways
# to provide Eigen.
macro(lmm_find_eigen)
  find_package(Eigen3 3.4 CONFIG QUIET)
  if(NOT Eigen3_FOUND)
    if(NOT Python_EXECUTABLE)
      find_package(Python COMPONENTS Interpreter QUIET)
    endif()
    if(Python_EXECUTABLE)
      execute_process(
        COMMAND "${Python_EXECUTABLE}" -c
                "import cmeel.consts as c, os, sys; sys.stdout.write(os.path.join(os.path.dirname(os.path.dirname(c.__file__)), c.CMEEL_PREFIX))"
        OUTPUT_VARIABLE _lmm_cmeel_prefix
        RESULT_VARIABLE _lmm_cmeel_result
        ERROR_QUIET)
      if(_lmm_cmeel_result EQUAL 0)
        find_package(Eigen3 3.4 CONFIG QUIET PATHS "${_lmm_cmeel_prefix}" NO_DEFAULT_PATH)
      endif()
    endif()
  endif()
  string(CONCAT LMM_EIGEN_NOT_FOUND
         "lmm needs Eigen >= 3.4 and found none. Either install it where CMake looks (Debian/Ubuntu: "
         "apt-get install libeigen3-dev, or pass -DEigen3_DIR=<directory of Eigen3Config.cmake> or "
         "-DCMAKE_PREFIX_PATH=<its prefix>), or install the cmeel-eigen wheel into the Python on PATH "
         "(python -m pip install cmeel-eigen, or pass -DPython_EXECUTABLE=<that python>).")
endmacro()
