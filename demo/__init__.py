"""The restoration demo (Gradio). ``demo.app.build_demo()`` builds it; the root ``app.py`` launches it."""
