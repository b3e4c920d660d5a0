"""The classifier IoT Edge module.

OpenCV reads its image-size limits once, when it loads; every submodule that decodes imports
it, so the limits are set here, before any of them (see ``opencv_limits``).
"""

from classifier.opencv_limits import cap_opencv_image_size

cap_opencv_image_size()
