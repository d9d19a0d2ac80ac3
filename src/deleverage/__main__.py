from deleverage.cli.main import app

app(prog_name="deleverage")
